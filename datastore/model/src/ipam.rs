//! IPAM objects stored in the datastore: blocks, block affinities, handles
//! and the IPAM configuration (being built: see issue 6).
