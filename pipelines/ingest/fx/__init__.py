"""FX: exchange rates loaded by dlt into the `fx` dataset, for every workspace at once.

- `fx.ecb_rates`: the ECB's euro foreign exchange reference rates, one row per TARGET business day
  and currency (`day`, `currency`, `units_per_eur`), read from ABOS_FX_ECB_URL: the ECB's
  eurofxref-hist file as it publishes it (.zip holding the CSV, the CSV itself, or the XML).
  Loaded incrementally on `day`, merged on `(day, currency)`.
- `fx.operator_rates`: the operator's rates file (ABOS_FX_RATES_FILE, CSV with the header
  `date,currency,units_per_eur`) for currencies the ECB does not quote (KWD, ARS, CLP, COP...);
  replaced on every load, so the file is the whole truth.

dbt turns both into one rate per currency and day (int_fx_rates_ranged): a rate holds until the
next one, and every conversion crosses through the euro (docs/metrics.md, "Currency").
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ElementTree
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

import dlt
from dlt.sources.helpers import requests

from pipelines.currencies import KNOWN
from pipelines.settings import FxSettings, SettingsError

ECB_NAMESPACE = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
RATE_COLUMNS = {"day": {"data_type": "date", "nullable": False}, "currency": {"data_type": "text", "nullable": False},
                "units_per_eur": {"data_type": "decimal", "precision": 38, "scale": 10, "nullable": False}}


class RatesFileError(SettingsError):
    """The operator's rates file cannot be read; the message names the file, the line and the fix."""


def ecb_rows(content: bytes, name: str, since: date | None = None) -> Iterator[dict]:
    """Rows of an ECB eurofxref file (`name` tells the format: .zip, .csv or .xml), of the days from
    `since` on when given: the file holds every day since 1999, and a refresh wants the new ones."""
    first = since.isoformat() if since else ""  # the file's days are ISO dates: compared as text
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            [member] = [n for n in archive.namelist() if n.endswith((".csv", ".xml"))]
            yield from ecb_rows(archive.read(member), member, since)
    elif name.endswith(".xml"):
        root = ElementTree.fromstring(content)
        for day in root.iter(f"{ECB_NAMESPACE}Cube"):
            if "time" in day.attrib and day.attrib["time"] >= first:
                for rate in day:
                    yield _row(day.attrib["time"], rate.attrib["currency"], rate.attrib["rate"])
    else:
        reader = csv.reader(io.StringIO(content.decode("utf-8-sig")))
        header = [column.strip() for column in next(reader)]
        for line in reader:
            if not line or line[0].strip() < first:
                continue
            for currency, value in zip(header[1:], line[1:]):
                if currency and value.strip() not in ("", "N/A"):
                    yield _row(line[0].strip(), currency, value.strip())


def _day(value: object) -> date | None:
    """dlt's last cursor value as a date (its state may give it back as a date, a datetime or text)."""
    return None if value is None else date.fromisoformat(str(value)[:10])


def _row(day: str, currency: str, rate: str) -> dict:
    return {"day": date.fromisoformat(day), "currency": currency.upper(), "units_per_eur": Decimal(rate)}


def operator_rows(path: Path) -> list[dict]:
    """The rows of the operator's rates file, checked: every error names the line and what to write."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RatesFileError(f"ABOS_FX_RATES_FILE={path}: cannot read it ({exc.strerror})") from None
    reader = csv.DictReader(io.StringIO(text))
    if [c.strip() for c in reader.fieldnames or []] != ["date", "currency", "units_per_eur"]:
        raise RatesFileError(f"ABOS_FX_RATES_FILE={path}: the first line must be date,currency,units_per_eur")
    rows = []
    for line, record in enumerate(reader, start=2):
        try:
            row = _row(record["date"].strip(), record["currency"].strip(), record["units_per_eur"].strip())
            if row["units_per_eur"] <= 0 or row["currency"] not in KNOWN:
                raise ValueError
        except (AttributeError, ValueError, InvalidOperation):
            raise RatesFileError(
                f"ABOS_FX_RATES_FILE={path}, line {line}: expected YYYY-MM-DD,ISO code,units of that currency per "
                f"euro (e.g. 2026-03-02,KWD,0.3312), got {','.join(str(v) for v in record.values())!r}") from None
        rows.append(row)
    return rows


def fetch(url: str) -> bytes:
    """The file at `url` (http(s) through dlt's retrying session, or file://)."""
    if url.startswith("file://"):
        return Path(urlsplit(url).path).read_bytes()
    response = requests.get(url, timeout=60)
    response.raise_for_status()
    return response.content


@dlt.source(name="fx", max_table_nesting=0)
def fx_source(settings: FxSettings):
    """The ECB's reference rates and the operator's rates file."""

    @dlt.resource(name="ecb_rates", primary_key=("day", "currency"),
                  write_disposition={"disposition": "merge", "strategy": "delete-insert"}, columns=RATE_COLUMNS)
    def ecb_rates(day=dlt.sources.incremental("day", initial_value=date(1999, 1, 1))):
        """The ECB's euro reference rates, one row per TARGET day and currency."""
        # One batch, not row by row: dlt's incremental hashes every row of the newest day again for
        # each row it is handed (about 30 currencies a day), which made 16,646 rows cost 482,328 hashes.
        # Only the days from the last one loaded on are parsed: dlt would drop the earlier ones (and
        # keep the last day's rows it has not seen) after parsing and filtering them at every refresh.
        yield list(ecb_rows(fetch(settings.ecb_url), urlsplit(settings.ecb_url).path, since=_day(day.last_value)))

    @dlt.resource(name="operator_rates", write_disposition="replace", columns=RATE_COLUMNS)
    def operator_rates():
        """The operator's own rates (ABOS_FX_RATES_FILE), which take precedence over the ECB's."""
        yield operator_rows(settings.rates_file) if settings.rates_file else []

    return ecb_rates, operator_rates


def fx_pipeline(settings, warehouse=None) -> dlt.Pipeline:
    """The one pipeline that loads the `fx` dataset (rates serve every workspace) into `warehouse`
    (an asset's resource; default: the settings' warehouse)."""
    return dlt.pipeline(pipeline_name="fx", pipelines_dir=str(settings.home / "dlt"),
                        destination=(warehouse or settings.warehouse).dlt_destination(), dataset_name="fx")


def sync_fx(settings) -> dict[str, int]:
    """Load the rates outside Dagster (`abos ingest`, tests); returns rows loaded per table."""
    pipeline = fx_pipeline(settings)
    with settings.warehouse.load_lock(pipeline.dataset_name):  # one load of the dataset at a time
        pipeline.run(fx_source(settings.fx)).raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts
    return {table: rows for table, rows in counts.items() if not table.startswith("_dlt")}
