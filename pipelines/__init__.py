"""AI Business OS: the pipeline's package.

No usage statistics leave a process of the project: dlt sends each pipeline step's summary to its
makers by default (`runtime.dlthub_telemetry`), so every process importing the project turns it off
here, before any pipeline runs. dbt's are off in dbt_project.yml (`flags`), Dagster's in
deploy/dagster.yaml (`telemetry`). An operator who wants dlt's on sets RUNTIME__DLTHUB_TELEMETRY=true.
"""

import os

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
