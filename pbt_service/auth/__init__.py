"""Access control: hashed tokens with roles and study lists, checked per method by a server
interceptor. See `policy` for the table, `tokens` for storage, docs/security.md for the guide."""

from pbt_service.auth.interceptor import AccessInterceptor, bearer
from pbt_service.auth.policy import POLICY, Rule, Scope
from pbt_service.auth.tokens import Authenticator, create_token, token_hash

__all__ = ["POLICY", "AccessInterceptor", "Authenticator", "Rule", "Scope", "bearer", "create_token", "token_hash"]
