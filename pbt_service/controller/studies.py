"""Use cases on studies: create, read, list, pause and resume."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from pbt_service.controller.queries import StudyPage
from pbt_service.core.checkpoint_paths import normalize_roots
from pbt_service.core.errors import FailedPreconditionError
from pbt_service.core.search_space import validate_config
from pbt_service.core.types import Study, StudyConfig, StudyState
from pbt_service.store.base import Transaction

log = logging.getLogger(__name__)


def create_study(tx: Transaction, name: str, config: StudyConfig, now: datetime) -> Study:
    """Validates the config (InvalidArgumentError naming the field) and stores the study;
    AlreadyExistsError when the name is taken."""
    validate_config(config)
    roots = normalize_roots(config.checkpoints.roots, "config.checkpoints.roots")
    config = replace(config, checkpoints=replace(config.checkpoints, roots=roots))
    study = tx.create_study(name, config, now)
    log.info("created study %s", name)
    return study


def get_study(tx: Transaction, name: str) -> Study:
    """Raises NotFoundError."""
    return tx.get_study(name)


def list_studies(tx: Transaction, *, after_name: str = "", page_size: int = 100) -> StudyPage:
    """Studies named after `after_name`, by name, at most `page_size`."""
    studies = tx.list_studies(after_name=after_name, limit=page_size + 1)
    more = len(studies) > page_size
    return StudyPage(tuple(studies[:page_size]), studies[page_size - 1].name if more else None)


def set_paused(tx: Transaction, name: str, paused: bool) -> Study:
    """Pauses (no new trials; active ones may finish and report) or resumes a study; repeating
    either is a no-op. Raises NotFoundError, and FailedPreconditionError for a DONE study."""
    study = tx.get_study(name, lock=True)
    if study.state is StudyState.DONE:
        verb = "paused" if paused else "resumed"
        raise FailedPreconditionError(f"study {name!r} is done and cannot be {verb}")
    target = StudyState.PAUSED if paused else StudyState.ACTIVE
    if study.state is not target:
        tx.set_study_state(name, target)
        log.info("study %s %s", name, "paused" if paused else "resumed")
    return replace(study, state=target)
