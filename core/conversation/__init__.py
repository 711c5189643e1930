"""The conversation engine both channels share: ``Turn`` in, ``Screen`` out (ARCHITECTURE.md)."""
