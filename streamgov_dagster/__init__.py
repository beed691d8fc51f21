"""streamgov: governance of personal data in a media streaming service, as a Dagster asset graph."""

__version__ = "0.1.0"
