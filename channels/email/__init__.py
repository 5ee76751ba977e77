"""The email channel: `sender` (SMTP), `mime` (the message), `verp` (the return path),
`bounce` (reading what comes back). Import from the submodule that does the job."""
