"""Files: names and folders, file records, listing and downloads."""
