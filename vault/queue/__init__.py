"""The offline operation queue: operations a device made offline, applied once it is online."""
