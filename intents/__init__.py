"""Intent files, one per language; installed as the package `assistant.lang`."""
