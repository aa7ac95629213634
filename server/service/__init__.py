"""The service's own routes, above every feature (docs/ARCHITECTURE.md, the layers).

health_routes.py     liveness and readiness
doc_routes.py        the documents at /api/docs and the OpenAPI document
static_routes.py     the console's pages and the browser client
metrics_route.py     Prometheus metrics at /metrics
openapi.py           the OpenAPI part of these paths
openapi_document.py  the whole OpenAPI document, assembled from every feature's part
openapi_security.py  the security schemes and responses added to every operation
"""
