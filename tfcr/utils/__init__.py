"""Small helpers every role uses: atomic JSON files, the machine description."""
