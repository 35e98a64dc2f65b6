"""Use cases on studies: create, read, list."""

from __future__ import annotations

import logging
from datetime import datetime

from pbt_service.core.search_space import validate_config
from pbt_service.core.types import Study, StudyConfig
from pbt_service.store.base import Transaction

log = logging.getLogger(__name__)


def create_study(tx: Transaction, name: str, config: StudyConfig, now: datetime) -> Study:
    """Validates the config (InvalidArgumentError naming the field) and stores the study;
    AlreadyExistsError when the name is taken."""
    validate_config(config)
    study = tx.create_study(name, config, now)
    log.info("created study %s", name)
    return study


def get_study(tx: Transaction, name: str) -> Study:
    """Raises NotFoundError."""
    return tx.get_study(name)


def list_studies(tx: Transaction) -> list[Study]:
    return tx.list_studies()
