"""Export's HTTP routes, one module per resource. Each parses the request, calls one service function with the
route's session and the caller, and returns its schema. Who may call each route is in
shared/security/authorization.yaml."""
