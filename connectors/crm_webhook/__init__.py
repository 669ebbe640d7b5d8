"""Leads to the resellers' CRMs: Standard Webhooks pushed from ``pn.leads.v1``, with retries."""
