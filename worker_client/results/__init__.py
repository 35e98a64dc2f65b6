"""Reading a study back: its trials, best trials and Pareto front, lineages and hyperparameter
schedules, as typed objects, tables, files and (with the `results` extra) DataFrames and plots.

Example:
    from worker_client.results import connect

    with connect("localhost:50051") as results:      # or a database URL, read-only
        study = results.study("digits")
        print(study.summary().best_metrics, study.trials_dataframe().head())
"""

from worker_client.results.events import Event, event_of
from worker_client.results.schedules import best, format_schedule, format_value, trial_schedule
from worker_client.results.source import AccessDenied, ResultsSource, ServiceSource, SourceUnavailable, open_source
from worker_client.results.study_results import Lineage, Results, StudyResults, connect
from worker_client.results.summary import StudySummary

__all__ = [
    "AccessDenied", "Event", "Lineage", "Results", "ResultsSource", "ServiceSource", "SourceUnavailable",
    "StudyResults", "StudySummary", "best", "connect", "event_of", "format_schedule", "format_value", "open_source",
    "trial_schedule",
]
