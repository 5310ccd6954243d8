"""Row builders of the demo tables: new rows from ids, times and the Generator's draws."""
