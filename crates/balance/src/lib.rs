//! nginx's load-balancing algorithms over a peer table. Pure: no I/O, no
//! clock (time is passed in), no threads (the caller wraps it in a lock).
