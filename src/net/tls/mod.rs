//! TLS shared by the network components: the client side every exporter speaks
//! (`client`).

pub mod client;
