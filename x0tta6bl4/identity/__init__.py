"""Identities in the mesh: signed join credentials now, SPIFFE SVIDs when enabled."""

from __future__ import annotations

from x0tta6bl4.identity.credentials import JoinCredential, issue_token, verify_token

__all__ = ["JoinCredential", "issue_token", "verify_token"]
