"""Board and two-stage detector simulator (gymnasium). Numpy only: no torch here."""
