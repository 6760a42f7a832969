"""Built-in plugins. Every module here is loaded at start; each is a model of the plugin API."""
