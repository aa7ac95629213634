"""The building blocks of the OpenAPI document (``components.py``): every feature describes
its paths with them in its own package's ``openapi.py``; server/service/openapi_document.py
assembles the parts into the document served at ``/api/openapi.json``."""
