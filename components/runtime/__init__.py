"""One inference runtime for embedders, teachers and the student: handler interface and sharded runner."""
