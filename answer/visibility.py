"""Which stored answers a key may see: the rule ``GET /v1/feedback`` and the review queue share.

An answer's provenance quotes the passages it retrieved, so showing it is showing their documents:
unless the bound ``groups`` is NULL (admins), an answer is visible only when every passage it
retrieved comes from a document of its tenant that shares one of ``groups`` now. Access taken away,
or a document deleted, hides the answer too.
"""

from __future__ import annotations

# A condition on an answer aliased ``a``, with the named parameter ``groups`` (text[] or NULL).
READABLE_ANSWER = """(%(groups)s::text[] IS NULL OR NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements(a.retrieved) p
    WHERE NOT EXISTS (
        SELECT 1 FROM documents d
        WHERE d.tenant_id = a.tenant_id AND d.id = (p->>'document_id')::uuid
          AND d.acl_groups && %(groups)s::text[])))"""
