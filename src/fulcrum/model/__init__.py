"""Pure object model: pydantic schemas, enums, defaults and validation of every config object."""
