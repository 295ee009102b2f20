"""How a report says things: its words in the workspace's language, its numbers by its locale.

Words come from a small message table per language (`MESSAGES`); numbers, money and weekday names
come from Babel's CLDR data for the locale (docs/reports.md, "Languages and number formats"). A
message missing from a language falls back to English, so a partial table never breaks a report.
Dates stay ISO 8601 (2026-03-04) in every language: they read the same everywhere, and the LLM
summary's fact check reads them without a calendar per language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import NumberPattern, format_decimal, parse_pattern

from pipelines.currencies import minor_digits
from pipelines.packs.pack import COHORT_MONTHS

DEFAULT_LOCALE = "en"
MINUS = "−"  # a true minus sign, as the drivers' phrases use
# Symbols that are unambiguous on their own, per language; every other currency is written with
# its ISO code ("CHF 1,234.50").
SYMBOLS = {
    "en": {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"},
    "pt": {"BRL": "R$", "USD": "US$", "EUR": "€", "GBP": "£"},
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Weekly report: {name}, {week}",
        "period": "Monday {start} to Sunday {end}, {timezone}; compared with {previous}",
        "partial": " (data for {days} of 7 days)",
        "metric": "Metric",
        "this_week": "This week",
        "last_week": "Last week",
        "change": "Change",
        "history": "Last {weeks} weeks",
        "movers": "Top movers",
        "anomalies": "Anomalies",
        "none": "none",
        "none_this_week": "none this week",
        "held_back": "{count} smaller findings this week are kept in insights.anomalies",
        "mover": "{label} {change} ({delta}), {outcome}",
        "good": "good",
        "bad": "bad",
        "flat": "flat",
        "n/a": "n/a",
        "unchanged": "unchanged",
        "from_zero": "from zero",
        "from_near_zero": "from near zero",
        "times": "×{times}",
        "turned_negative": "turned negative",
        "turned_positive": "turned positive",
        "anomaly": ("{date} ({weekday}): {label} {value}, expected {expected} (band {band}); {direction}, "
                    "severity {severity}, score {score}, rule {rule}{stake}{holiday}"),
        "band": "{lower} to {upper}",
        "stake": "; {impact} at stake",
        "holiday": "; on {holiday}, against the same holiday last year",
        "where.up.expected": "above expected", "where.down.expected": "below expected",
        "where.up.last_week": "above last week", "where.down.last_week": "below last week",
        "base.expected": "expected", "base.last_week": "last week",
        "direction": "{where}, {outcome} news",
        "severity.high": "high", "severity.medium": "medium", "severity.low": "low",
        "related": "also {label} {value} against {expected} {base} ({date}, {rule})",
        "chart_title": "{name}: last {weeks} weeks to {week}",
        "chart_alt": "Trend of the headline metrics, {weeks} weeks",
        # driver phrases: "country DE: $1,201.20 against $300.00 on usual Wednesdays (+300%), 75% of
        # the rise (usually 20%)"
        "driver": "{what}: {actual} against {expected} on {weekdays} ({change}), {share}",
        "driver_new": "{what}: {actual} against none on {weekdays}, {share}",
        "usual_weekdays": "usual {weekdays}",
        "driver_unattributed": "not attributed to one {dimension}: {share}",
        "share": "{share} of the {movement} (usually {usual})",
        "share_plain": "{share} of the {movement}",
        "offsetting": "offsetting {share}",
        "rise": "rise", "drop": "drop",
        "or": "{first} or {last}",
        # recommended actions: one sentence per anomaly and mover (docs/reports.md)
        "action.driver.bad": "Start with {subject}{share}: {hint}.",
        "action.driver.good": "Led by {subject}{share}: {hint}.",
        "action.everywhere": "No single {dimensions} explains it: {hint}.",
        "action.plain": "{hint}.",
        "action.partial_week": ("Wait for the full week before acting: this week has data for {days} of 7 days, "
                                "so {label} compares part of a week with a whole one."),
        "action.see_anomaly": "See the anomaly of {date}. {action}",
        "action.breakdown.bad": ("Break {label} down by {dimensions} for {week} against {previous} to find "
                                 "where the {movement} came from."),
        "action.breakdown.good": ("Break {label} down by {dimensions} for {week} against {previous} to find "
                                  "what worked."),
        "hint.bad": "check what changed there on {date}: prices, stock, listings, checkout or campaigns",
        "hint.good": "find out what worked there and whether it can be repeated",
        "hint.refunds.bad": "check its refunds of {date} for a product fault, a delivery problem or a misleading listing",
        "hint.discounts.bad": ("check which discount codes were used on {date} and whether a promotion ran wider "
                               "than planned"),
        "hint.churned_mrr.bad": "contact the customers who cancelled on {date} and ask why",
        "hint.churned_subscriptions.bad": "contact the customers who cancelled on {date} and ask why",
        "hint.contraction_mrr.bad": "contact the customers who downgraded on {date} and ask why",
        "hint.new_mrr.bad": "check sign-ups, trials and the pricing page for {date}",
        "hint.new_subscriptions.bad": "check sign-ups, trials and the pricing page for {date}",
        "hint.expansion_mrr.bad": "check upgrade prompts and seat limits for {date}",
        "hint.mrr.bad": "check the cancellations and downgrades of {date}",
        "hint.arr.bad": "check the cancellations and downgrades of {date}",
        "hint.net_new_mrr.bad": "check the cancellations and downgrades of {date}",
        # the template summary (pipelines/insights/summaries.py)
        "summary.week": "{name}, week {week} ({start} to {end}).",
        "summary.headline": "{label} {current} ({change} on the week before)",
        "summary.no_comparison": "{label} {current} (no comparison with the week before)",
        "summary.moves": "Biggest moves: {moves}.",
        "summary.move": "{label} {change} ({outcome})",
        "summary.anomaly": "Anomaly on {date}: {label} was {value} against {expected} expected{driver}.",
        "summary.led_by": ", led by {phrase}",
        "summary.more": "{count} more anomalies are listed below.",
        "summary.none": "No anomalies this week.",
        # Slack (pipelines/deliver/slack.py)
        "slack.period": "Monday {start} to Sunday {end} ({timezone}), compared with {previous}",
        "slack.anomalies": "*Anomalies this week: {count}*",
        "slack.no_anomalies": "*Anomalies this week:* none",
        "slack.anomaly": "*{label}* on {date} ({weekday}): {value}, expected {expected} (band {band}); {direction}, "
                         "severity {severity}",
        "slack.more": "{count} more in the emailed report",
        "slack.chart_title": "{name}: trend to {week}",
        "slack.chart_alt": "Trend of {metrics} over the last {weeks} weeks",
        # forecasts, opportunities and the retention chart (pipelines/insights/forecasts.py, opportunities.py)
        "outlook": "Outlook",
        "outlook.line": "{label}: on track for {value} this month ({change} vs last month)",
        "outlook.no_previous": "{label}: on track for {value} this month",
        "opportunities": "Risks and opportunities",
        "opportunity": "{subject}: {evidence}; {stake} at stake",
        "opp.cohort": "the {month} cohort",
        "opp.kind.churn_risk": "churn risk", "opp.kind.segment_slip": "slipping customer",
        "opp.kind.product_trend": "product trend", "opp.kind.cohort_retention": "cohort retention",
        "opp.signal.failed_payment": "a failed payment", "opp.signal.past_due": "past due",
        "opp.signal.unpaid": "unpaid", "opp.signal.cancellation_requested": "cancellation requested",
        "opp.signal.downgrade": "downgraded", "opp.signal.fewer_seats": "fewer seats",
        "opp.churn_risk.evidence": "{signals}; {mrr} MRR",
        "opp.churn_risk.action.payment": ("Ask {name} to update their payment method today, and check the failed "
                                          "charge's decline reason"),
        "opp.churn_risk.action.cancellation": ("Call {name} before the period ends: ask why they are leaving and "
                                               "offer a fix, a pause or a smaller plan"),
        "opp.churn_risk.action.downgrade": ("Ask {name} what made them cut back, and show them the features they "
                                            "stopped paying for"),
        "segment.champions": "champions", "segment.loyal": "loyal", "segment.at_risk": "at risk",
        "segment.needs_attention": "needs attention", "segment.hibernating": "hibernating",
        "segment.new": "new", "segment.promising": "promising",
        "opp.segment_slip.evidence": ("fell from {before} to {after}: {orders} orders, none in {days} days, "
                                      "{sales} in the last year"),
        "opp.segment_slip.action": ("Win back {name}: send a personal note with an offer on what they usually buy, "
                                    "before more of {days} days without an order become a habit"),
        "opp.product_trend.evidence": ("{share} of net sales in the last {weeks} weeks against {usual} in the "
                                       "{base} before ({weekly} a week)"),
        "opp.product_trend.action.up": ("Make sure {name} stays in stock, and give it more room in campaigns and on "
                                        "the home page while it is rising"),
        "opp.product_trend.action.down": ("Check {name}'s stock, price, page and recent reviews against a month "
                                          "ago, and fix what changed"),
        "opp.cohort_retention.evidence.ecommerce": ("{rate} of the cohort's customers bought in month {months}, against "
                                                    "a usual {usual} ({cohorts} other cohorts)"),
        "opp.cohort_retention.evidence.saas": ("net revenue retention {rate} in month {months}, against a usual "
                                               "{usual} ({cohorts} other cohorts)"),
        "opp.cohort_retention.action.better": ("Find what the {month} cohort's customers have in common (campaign, "
                                               "first product, offer) and spend more where they came from"),
        "opp.cohort_retention.action.worse": ("Look at how the {month} cohort was acquired and onboarded, and send "
                                              "it a second-purchase or onboarding follow-up"),
        "retention.title": "{name}: {what} by months since joining",
        "retention.ecommerce": "customers buying again",
        "retention.saas": "customers still paying",
        "retention.months": "months since joining",
        "retention.usual": "all cohorts",
        "slack.opportunities": "*Top risks and opportunities*",
    },
    "pt": {
        "title": "Relatório semanal: {name}, {week}",
        "period": "Segunda-feira {start} a domingo {end}, {timezone}; comparado com {previous}",
        "partial": " (dados de {days} de 7 dias)",
        "metric": "Métrica",
        "this_week": "Esta semana",
        "last_week": "Semana passada",
        "change": "Variação",
        "history": "Últimas {weeks} semanas",
        "movers": "Maiores variações",
        "anomalies": "Anomalias",
        "none": "nenhuma",
        "none_this_week": "nenhuma nesta semana",
        "held_back": "{count} achados menores desta semana estão em insights.anomalies",
        "good": "boa",
        "bad": "ruim",
        "flat": "estável",
        "n/a": "n/d",
        "unchanged": "sem variação",
        "from_zero": "a partir de zero",
        "from_near_zero": "a partir de quase zero",
        "turned_negative": "ficou negativo",
        "turned_positive": "ficou positivo",
        "anomaly": ("{date} ({weekday}): {label} {value}, esperado {expected} (faixa {band}); {direction}, "
                    "gravidade {severity}, pontuação {score}, regra {rule}{stake}{holiday}"),
        "band": "{lower} a {upper}",
        "stake": "; {impact} em jogo",
        "holiday": "; em {holiday}, comparado com o mesmo feriado do ano passado",
        "where.up.expected": "acima do esperado", "where.down.expected": "abaixo do esperado",
        "where.up.last_week": "acima da semana passada", "where.down.last_week": "abaixo da semana passada",
        "base.expected": "esperado", "base.last_week": "na semana passada",
        "direction": "{where}, notícia {outcome}",
        "severity.high": "alta", "severity.medium": "média", "severity.low": "baixa",
        "related": "também {label} {value} contra {expected} {base} ({date}, {rule})",
        "chart_title": "{name}: últimas {weeks} semanas até {week}",
        "chart_alt": "Tendência das métricas principais, {weeks} semanas",
        "driver": "{what}: {actual} contra {expected} {weekdays} ({change}), {share}",
        "driver_new": "{what}: {actual} contra nada {weekdays}, {share}",
        "usual_weekdays": "{weekdays} habituais",
        "weekdays.0": "nas segundas-feiras", "weekdays.1": "nas terças-feiras", "weekdays.2": "nas quartas-feiras",
        "weekdays.3": "nas quintas-feiras", "weekdays.4": "nas sextas-feiras", "weekdays.5": "nos sábados",
        "weekdays.6": "nos domingos",
        "driver_unattributed": "sem um único {dimension} responsável: {share}",
        "share": "{share} da {movement} (normalmente {usual})",
        "share_plain": "{share} da {movement}",
        "offsetting": "compensando {share}",
        "rise": "alta", "drop": "queda",
        "or": "{first} ou {last}",
        "action.driver.bad": "Comece por {subject}{share}: {hint}.",
        "action.driver.good": "Puxado por {subject}{share}: {hint}.",
        "action.everywhere": "Nenhum corte por {dimensions} explica isso sozinho: {hint}.",
        "action.partial_week": ("Espere a semana completa antes de agir: esta semana tem dados de {days} de 7 dias, "
                                "então {label} compara parte de uma semana com uma semana inteira."),
        "action.see_anomaly": "Veja a anomalia de {date}. {action}",
        "action.breakdown.bad": ("Divida {label} por {dimensions} em {week} contra {previous} para achar de onde "
                                 "veio a {movement}."),
        "action.breakdown.good": ("Divida {label} por {dimensions} em {week} contra {previous} para achar o que "
                                  "funcionou."),
        "hint.bad": "verifique o que mudou ali em {date}: preços, estoque, anúncios, checkout ou campanhas",
        "hint.good": "descubra o que funcionou ali e se dá para repetir",
        "hint.refunds.bad": ("verifique os reembolsos de {date}: defeito no produto, problema na entrega ou "
                             "anúncio enganoso"),
        "hint.discounts.bad": "verifique quais cupons foram usados em {date} e se uma promoção foi além do planejado",
        "hint.churned_mrr.bad": "fale com os clientes que cancelaram em {date} e pergunte o motivo",
        "hint.churned_subscriptions.bad": "fale com os clientes que cancelaram em {date} e pergunte o motivo",
        "hint.contraction_mrr.bad": "fale com os clientes que reduziram o plano em {date} e pergunte o motivo",
        "hint.new_mrr.bad": "verifique cadastros, testes grátis e a página de preços em {date}",
        "hint.new_subscriptions.bad": "verifique cadastros, testes grátis e a página de preços em {date}",
        "hint.expansion_mrr.bad": "verifique os convites para upgrade e os limites de assentos em {date}",
        "hint.mrr.bad": "verifique os cancelamentos e reduções de plano de {date}",
        "hint.arr.bad": "verifique os cancelamentos e reduções de plano de {date}",
        "hint.net_new_mrr.bad": "verifique os cancelamentos e reduções de plano de {date}",
        "summary.week": "{name}, semana {week} ({start} a {end}).",
        "summary.headline": "{label} {current} ({change} sobre a semana anterior)",
        "summary.no_comparison": "{label} {current} (sem comparação com a semana anterior)",
        "summary.moves": "Maiores variações: {moves}.",
        "summary.anomaly": "Anomalia em {date}: {label} foi {value} contra {expected} esperado{driver}.",
        "summary.led_by": ", puxada por {phrase}",
        "summary.more": "Outras {count} anomalias estão listadas abaixo.",
        "summary.none": "Nenhuma anomalia nesta semana.",
        "slack.period": "Segunda-feira {start} a domingo {end} ({timezone}), comparado com {previous}",
        "slack.anomalies": "*Anomalias nesta semana: {count}*",
        "slack.no_anomalies": "*Anomalias nesta semana:* nenhuma",
        "slack.anomaly": "*{label}* em {date} ({weekday}): {value}, esperado {expected} (faixa {band}); {direction}, "
                         "gravidade {severity}",
        "slack.more": "Mais {count} no relatório por e-mail",
        "slack.chart_title": "{name}: tendência até {week}",
        "slack.chart_alt": "Tendência de {metrics} nas últimas {weeks} semanas",
        # the packs' metric and dimension labels
        "metric.net_sales": "Vendas líquidas", "metric.gross_sales": "Vendas brutas", "metric.discounts": "Descontos",
        "metric.refunds": "Reembolsos", "metric.orders": "Pedidos", "metric.units": "Unidades vendidas",
        "metric.aov": "Ticket médio", "metric.new_customers": "Clientes novos",
        "metric.returning_customers": "Clientes recorrentes",
        "metric.customers_to_date": "Clientes até hoje", "metric.repeat_customers_to_date": "Clientes que voltaram",
        "metric.repeat_purchase_rate": "Taxa de recompra", "metric.net_sales_to_date": "Vendas líquidas acumuladas",
        "metric.net_sales_per_customer": "Vendas líquidas por cliente (LTV histórico)", "metric.net_new_mrr": "MRR novo líquido",
        "metric.new_mrr": "MRR novo", "metric.expansion_mrr": "MRR de expansão",
        "metric.contraction_mrr": "MRR de contração", "metric.churned_mrr": "MRR cancelado",
        "metric.reactivation_mrr": "MRR de reativação", "metric.active_subscriptions": "Assinaturas ativas",
        "metric.active_customers": "Clientes ativos", "metric.new_subscriptions": "Assinaturas novas",
        "metric.churned_subscriptions": "Assinaturas canceladas",
        # the SaaS ratios and their parts (issue 11)
        "metric.subscriber_churn_rate": "Taxa de cancelamento de clientes",
        "metric.churned_customers_30d": "Clientes cancelados (30 dias)",
        "metric.customers_at_risk_30d": "Clientes ativos há 30 dias ou desde então",
        "metric.mrr_churn_rate": "Taxa de cancelamento de MRR", "metric.churned_mrr_30d": "MRR cancelado (30 dias)",
        "metric.mrr_at_risk_30d": "MRR de 30 dias atrás ou desde então",
        "metric.net_revenue_retention": "Retenção líquida de receita",
        "metric.gross_revenue_retention": "Retenção bruta de receita",
        "metric.mrr_at_month_start": "MRR no início do mês", "metric.retained_mrr": "MRR retido",
        "metric.retained_gross_mrr": "MRR retido sem expansão",
        "metric.trial_conversion_rate": "Taxa de conversão de testes",
        "metric.trials_ended_30d": "Testes encerrados (30 dias)",
        "metric.trials_converted_30d": "Testes convertidos (30 dias)",
        "metric.ltv": "Valor do cliente no tempo de vida (LTV)",
        "dimension.product": "produto", "dimension.country": "país", "dimension.customer_type": "tipo de cliente",
        "dimension.plan": "plano", "dimension.movement_type": "tipo de movimento",
        "dimension.billing_currency": "moeda de cobrança", "dimension.segment": "segmento RFM",
        # RFM segments and cohort retention (issue 16; not watched, read by questions)
        "metric.segment_customers": "Clientes por segmento RFM",
        "metric.segment_net_sales": "Vendas líquidas por segmento RFM",
        "metric.cohort_customers": "Clientes conquistados (tamanho da coorte)",
        "metric.cohort_paying_customers": "Clientes que começaram a pagar (tamanho da coorte)",
        **{key: text for month in COHORT_MONTHS for key, text in {
            f"metric.customer_retention_m{month}": f"Retenção de clientes no mês {month}",
            f"metric.retained_customers_m{month}": f"Clientes da coorte que compraram no mês {month}",
            f"metric.cohort_customers_m{month}": f"Clientes das coortes que chegaram ao mês {month}",
            f"metric.revenue_retention_m{month}": f"Retenção de receita no mês {month}",
            f"metric.cohort_net_sales_m{month}": f"Vendas líquidas das coortes no mês {month}",
            f"metric.first_month_net_sales_m{month}": f"Vendas líquidas do primeiro mês (coortes no mês {month})",
            f"metric.logo_retention_m{month}": f"Retenção de clientes no mês {month}",
            f"metric.retained_logos_m{month}": f"Clientes da coorte pagando no fim do mês {month}",
            f"metric.cohort_logos_m{month}": f"Clientes das coortes que chegaram ao mês {month}",
            f"metric.net_revenue_retention_m{month}": f"Retenção líquida de receita no mês {month}",
            f"metric.cohort_mrr_m{month}": f"MRR das coortes no fim do mês {month}",
            f"metric.cohort_starting_mrr_m{month}": f"MRR inicial das coortes (no mês {month})",
        }.items()},
        # forecasts of the coming days (read by questions)
        "metric.net_sales_forecast": "Previsão de vendas líquidas", "metric.orders_forecast": "Previsão de pedidos",
        "metric.mrr_forecast": "Previsão de MRR",
        "metric.mrr_forecast_lower_80": "Previsão de MRR, limite inferior (80%)",
        "metric.mrr_forecast_upper_80": "Previsão de MRR, limite superior (80%)",
        "rule.band": "faixa", "rule.week_over_week": "semana contra semana",
        # dimension values that are words of ours, not the shop's names
        "value.customer_type.new": "novo", "value.customer_type.returning": "recorrente",
        "value.movement_type.new": "novo", "value.movement_type.expansion": "expansão",
        "value.movement_type.contraction": "contração", "value.movement_type.churn": "cancelamento",
        "value.movement_type.reactivation": "reativação",
        "value.segment.champions": "campeões", "value.segment.new": "novos", "value.segment.loyal": "leais",
        "value.segment.promising": "promissores", "value.segment.at_risk": "em risco",
        "value.segment.needs_attention": "precisam de atenção", "value.segment.hibernating": "hibernando",
        "outlook": "Perspectiva",
        "outlook.line": "{label}: a caminho de {value} neste mês ({change} vs o mês passado)",
        "outlook.no_previous": "{label}: a caminho de {value} neste mês",
        "opportunities": "Riscos e oportunidades",
        "opportunity": "{subject}: {evidence}; {stake} em jogo",
        "opp.cohort": "a coorte de {month}",
        "opp.kind.churn_risk": "risco de cancelamento", "opp.kind.segment_slip": "cliente se afastando",
        "opp.kind.product_trend": "tendência de produto", "opp.kind.cohort_retention": "retenção de coorte",
        "opp.signal.failed_payment": "um pagamento recusado", "opp.signal.past_due": "pagamento atrasado",
        "opp.signal.unpaid": "não pago", "opp.signal.cancellation_requested": "cancelamento pedido",
        "opp.signal.downgrade": "reduziu o plano", "opp.signal.fewer_seats": "menos assentos",
        "opp.churn_risk.evidence": "{signals}; {mrr} de MRR",
        "opp.churn_risk.action.payment": ("Peça hoje a {name} que atualize a forma de pagamento e veja o motivo da "
                                          "recusa da cobrança"),
        "opp.churn_risk.action.cancellation": ("Ligue para {name} antes do fim do período: pergunte por que está "
                                               "saindo e ofereça uma solução, uma pausa ou um plano menor"),
        "opp.churn_risk.action.downgrade": ("Pergunte a {name} o que levou ao corte e mostre os recursos que deixou "
                                            "de pagar"),
        "segment.champions": "campeões", "segment.loyal": "fiéis", "segment.at_risk": "em risco",
        "segment.needs_attention": "precisa de atenção", "segment.hibernating": "hibernando",
        "segment.new": "novos", "segment.promising": "promissores",
        "opp.segment_slip.evidence": ("caiu de {before} para {after}: {orders} pedidos, nenhum em {days} dias, "
                                      "{sales} no último ano"),
        "opp.segment_slip.action": ("Reconquiste {name}: mande uma mensagem pessoal com uma oferta do que costuma "
                                    "comprar, antes que {days} dias sem pedido virem hábito"),
        "opp.product_trend.evidence": ("{share} das vendas líquidas nas últimas {weeks} semanas contra {usual} nas "
                                       "{base} anteriores ({weekly} por semana)"),
        "opp.product_trend.action.up": ("Garanta o estoque de {name} e dê mais espaço a ele nas campanhas e na "
                                        "página inicial enquanto sobe"),
        "opp.product_trend.action.down": ("Compare estoque, preço, página e avaliações recentes de {name} com um mês "
                                          "atrás e corrija o que mudou"),
        "opp.cohort_retention.evidence.ecommerce": ("{rate} dos clientes da coorte compraram no mês {months}, contra "
                                                    "{usual} de costume ({cohorts} outras coortes)"),
        "opp.cohort_retention.evidence.saas": ("retenção líquida de receita de {rate} no mês {months}, contra {usual} "
                                               "de costume ({cohorts} outras coortes)"),
        "opp.cohort_retention.action.better": ("Descubra o que os clientes da coorte de {month} têm em comum "
                                               "(campanha, primeiro produto, oferta) e invista mais de onde vieram"),
        "opp.cohort_retention.action.worse": ("Veja como a coorte de {month} foi conquistada e recebida, e mande a ela "
                                              "um acompanhamento de segunda compra ou de onboarding"),
        "retention.title": "{name}: {what} por meses desde a entrada",
        "retention.ecommerce": "clientes que voltam a comprar",
        "retention.saas": "clientes que seguem pagando",
        "retention.months": "meses desde a entrada",
        "retention.usual": "todas as coortes",
        "slack.opportunities": "*Principais riscos e oportunidades*",
    },
}


def supported(locale: str) -> bool:
    """Whether Babel knows `locale` (e.g. "en", "pt_BR")."""
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


@cache
def _locale(identifier: str) -> Locale:
    """Babel's parse of `identifier`, once: Babel parses the text again at every call, and a report
    words thousands of amounts (a SaaS churn risk each)."""
    return Locale.parse(identifier)


@cache
def _number_pattern(digits: int) -> NumberPattern:
    """"#,##0" with `digits` decimals, parsed once (Babel's `format_decimal` takes the parsed pattern as is)."""
    return parse_pattern("#,##0" + ("." + "0" * digits if digits else ""))


@dataclass(frozen=True)
class Wording:
    """The words and number formats of one report: a locale and a reporting currency."""

    locale: str = DEFAULT_LOCALE
    currency: str = "USD"

    @classmethod
    def of(cls, facts: Mapping[str, Any]) -> Wording:
        """The wording of a report's facts: its workspace's locale (English for older facts) and currency."""
        workspace = facts["workspace"]
        return cls(workspace.get("locale") or DEFAULT_LOCALE, workspace["currency"])

    @property
    def language(self) -> str:
        return _locale(self.locale).language

    def say(self, key: str, **values: object) -> str:
        """The message `key` in the report's language (English when that language lacks it)."""
        template = MESSAGES.get(self.language, {}).get(key) or MESSAGES[DEFAULT_LOCALE][key]  # KeyError: unknown
        return template.format(**values)

    def label(self, kind: str, name: str, default: str) -> str:
        """A pack metric's, dimension's, rule's or dimension value's name in the report's language
        (`kind` "metric", "dimension", "rule" or "value", a value named "<dimension>.<value>"), else `default`."""
        return MESSAGES.get(self.language, {}).get(f"{kind}.{name}", default)

    def number(self, value: float, digits: int = 0) -> str:
        """|value| with the locale's separators and `digits` decimals: "1,234.5", "1.234,5"."""
        return format_decimal(abs(value), format=_number_pattern(digits), locale=_locale(self.locale),
                              decimal_quantization=True)

    def decimal(self, value: float, digits: int = 1) -> str:
        """A signed plain number: "−4.4", "6.2"."""
        return self._signed(self.number(value, digits), round(value, digits), False)

    def money(self, value: float | None, *, signed: bool = False, whole: bool = False) -> str:
        """An amount with its symbol (or ISO code) and the currency's minor digits: "$1,234.50", "¥1,235".

        `whole` drops the minor digits (chart axes). No number (None, NaN) is "n/a".
        """
        if _no_number(value):
            return self.say("n/a")
        digits = 0 if whole else minor_digits(self.currency)
        body = self.number(value, digits)
        code = self.currency.upper()
        symbol = SYMBOLS.get(self.language, SYMBOLS[DEFAULT_LOCALE]).get(code)
        prefix, _, _ = _locale(self.locale).currency_formats["standard"].pattern.partition("#")
        space = prefix.replace("¤", "")  # the locale's gap between symbol and digits, often none
        amount = f"{symbol}{space}{body}" if symbol else f"{code}{space or ' '}{body}"
        return self._signed(amount, round(value, digits), signed)

    def count(self, value: float | None, *, signed: bool = False) -> str:
        if _no_number(value):
            return self.say("n/a")
        return self._signed(self.number(value), round(value), signed)

    def percent(self, fraction: float | None, *, digits: int = 1, signed: bool = False) -> str:
        """A fraction as a percentage: 0.123 → "12.3%" ("+12.3%" signed)."""
        if _no_number(fraction):
            return self.say("n/a")
        return self._signed(self.number(fraction * 100, digits) + "%", round(fraction * 100, digits), signed)

    def value(self, unit: str, value: float | None, *, signed: bool = False, whole: bool = False) -> str:
        """A metric value as the report shows it: money, a whole count, or a ratio as a percentage."""
        if unit == "currency":
            return self.money(value, signed=signed, whole=whole)
        if unit == "ratio":
            return self.percent(value, digits=0 if whole else 1, signed=signed)
        return self.count(value, signed=signed)

    def weekday(self, day: date) -> str:
        """"Wednesday", "quarta-feira"."""
        return format_date(day, "EEEE", locale=self.locale)

    def weekdays(self, day: date) -> str:
        """"usual Wednesdays", "nas quartas-feiras habituais": the language's own plurals, else English's rule."""
        plural = MESSAGES.get(self.language, {}).get(f"weekdays.{day.weekday()}") or self.weekday(day) + "s"
        return self.say("usual_weekdays", weekdays=plural)

    @staticmethod
    def _signed(text: str, rounded: float, signed: bool) -> str:
        # Signs follow the rounded value, so a tiny negative never shows as "−$0.00".
        if rounded < 0:
            return MINUS + text
        return "+" + text if signed and rounded > 0 else text


def _no_number(value: object) -> bool:
    """None, or NaN (a ratio whose denominator is 0, a NULL read into a float column): nothing to print."""
    return value is None or value != value  # NaN is the one value unequal to itself
