"""How far the forecasts reach, in a module of its own: the forecasts (pandas, statsforecast) and the
questions about them (pipelines.ask, which needs no pandas for a number) both read it."""

HORIZON_DAYS = 91  # 13 weeks
