"""Example applications that show what the engine is for (each module documents itself)."""
