"""tus 1.0.0 resumable uploads over the node's upload sessions."""
