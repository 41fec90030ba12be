//! The tortie CNI plugins (being built; see issue 8).
