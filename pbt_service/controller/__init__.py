"""Application rules, transport-free: one use case per operation, leases, idempotency, lock order.

Domain values in, domain values or `pbt_service.core.errors` out; the gRPC servicer only
validates, converts and maps errors. See `Controller`.
"""

from pbt_service.controller.controller import Controller, utc_now
from pbt_service.controller.queries import TrialPage
from pbt_service.controller.settings import ServiceSettings
from pbt_service.controller.suggest import Suggestion

__all__ = ["Controller", "ServiceSettings", "Suggestion", "TrialPage", "utc_now"]
