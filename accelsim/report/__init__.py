"""What people see: tables, JSON and plots."""
