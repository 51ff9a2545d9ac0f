"""Export's rules, one module per aggregate: a loan's life (loans), its package (packages), the notices to
institutes (notices), the disclosure register (disclosures) and the statistics (statistics).

Service functions take the route's session and, where a person acts, the :class:`shared.app.Caller`; they flush
and never commit (the route's session commits), and refuse with :class:`shared.platform.errors.ApiError`.
"""
