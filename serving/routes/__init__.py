"""The API's routes, one module per audience: answers, documents, admin, health."""
