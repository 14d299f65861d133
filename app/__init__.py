"""Jiahe (家和): county family health & welfare field-work API."""
