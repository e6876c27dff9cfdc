"""ferlite: lightweight facial-expression recognition for inclusive classrooms."""

__version__ = "0.1.0"
