//! Pushing a snapshot of the user's source tree to Gitea.
