"""HTTP edge of the controller: routers, authentication dependency, error mapping."""
