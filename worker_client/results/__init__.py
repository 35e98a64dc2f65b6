"""Reading a study back: its trials, best trials and Pareto front, lineages and hyperparameter
schedules, as typed objects, tables, files and (with the `results` extra) DataFrames and plots."""

from worker_client.results.events import Event, event_of
from worker_client.results.schedules import best, format_schedule, format_value, trial_schedule

__all__ = ["Event", "best", "event_of", "format_schedule", "format_value", "trial_schedule"]
