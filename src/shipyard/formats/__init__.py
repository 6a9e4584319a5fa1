"""Formats shared by both ends of a wire: the pydantic models servers and clients exchange
and the sealed-secret text form (DESIGN.md "Code layout": the lowest layer beside db)."""
