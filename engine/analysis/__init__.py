"""Analysis: size-generalisation evaluation of compiled and learned models."""
