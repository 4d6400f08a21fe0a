"""Rule files: loading, the aisoc block, validation and the version lock."""
