"""Export and model server for tfcr servables (see the project's issues 3 and 4)."""
