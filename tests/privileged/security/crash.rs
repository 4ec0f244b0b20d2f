//! Crash tests: `kill -9` of peapod verbs at random points leaves nothing that blocks the next command.
