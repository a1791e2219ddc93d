"""Wire shapes shared by the processes. Each protocol carries its version; change one only
by adding a version, never by changing a field's meaning."""
