"""The main job: every asset of the lineage graph, for a range of daily partitions in one run."""

import dagster as dg

governance_job = dg.define_asset_job(
    "governance_job",
    selection=dg.AssetSelection.all(),
    description="Ingest, audit, consent, masking and reports for a range of UTC days (one run per range).",
)
