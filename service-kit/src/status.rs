//! The answer to an error that is ours, not the caller's: logged here,
//! once, with its whole cause chain on one line, and sent as a bare
//! `INTERNAL`, so no detail of our internals reaches a caller.

use std::error::Error;
use std::fmt;

use tonic::Status;

/// Logs `source` with its cause chain and answers `INTERNAL`.
pub fn internal(source: &(dyn Error + 'static)) -> Status {
    tracing::error!(error = %Chain(source), "internal error");
    Status::internal("internal error")
}

/// An error with its whole `source()` chain, `: `-separated.
#[derive(Debug)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_chain_is_printed_whole_and_the_caller_hears_nothing_of_it() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&error).to_string(), "outer: inner");
        let status = internal(&error);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
