//! The checks of a whole scenario that no single key can make (keys that contradict each
//! other), each a one-line error naming the keys and where they came from.

use super::{IoWork, Scenario, Transport};
use crate::units::format_duration;

impl Scenario {
    /// Something to run, a fault that can happen, and ports for every I/O thread.
    pub(super) fn validate_threads(&self) -> Result<(), String> {
        if self.cpu_threads == 0 && self.io == IoWork::None {
            return Err(format!(
                "{}: key 'cpu_threads' is 0 and the scenario has no I/O threads: nothing to run",
                self.origin_of("cpu_threads")
            ));
        }
        if self.fault.is_some() && self.cpu_threads == 0 {
            return Err(format!(
                "{}: key 'fault' strikes cpu-0, but cpu_threads is 0 ({}): the fault would never happen",
                self.origin_of("fault"),
                self.origin_of("cpu_threads")
            ));
        }
        let threads = self.io_thread_count();
        if self.port != 0 && threads > 1 && usize::from(self.port) + threads - 1 > 65_535 {
            return Err(format!(
                "{}: key 'port' ({}) with io_threads = {threads} ({}) needs ports up to {}, past 65535",
                self.origin_of("port"),
                self.port,
                self.origin_of("io_threads"),
                usize::from(self.port) + threads - 1
            ));
        }
        Ok(())
    }

    /// Echo requests that fit a datagram, carry a sequence number over UDP, and fit the
    /// servers' limit.
    pub(super) fn validate_requests(&self) -> Result<(), String> {
        if self.io != IoWork::Echo {
            return Ok(());
        }
        if self.transport == Transport::Udp && self.request_bytes > crate::workload::MAX_DATAGRAM {
            return Err(format!(
                "{}: key 'request_bytes' ({}) is more than a UDP datagram can carry ({} bytes)",
                self.origin_of("request_bytes"),
                self.request_bytes,
                crate::workload::MAX_DATAGRAM
            ));
        }
        if self.transport == Transport::Udp && self.request_bytes < 8 {
            return Err(format!(
                "{}: key 'request_bytes' must be at least 8 over UDP (requests carry a sequence number)",
                self.origin_of("request_bytes")
            ));
        }
        if self.request_bytes > self.max_request_bytes {
            return Err(format!(
                "{}: key 'request_bytes' ({}) is larger than max_request_bytes ({})",
                self.origin_of("request_bytes"),
                self.request_bytes,
                self.max_request_bytes
            ));
        }
        Ok(())
    }

    /// A spin shorter than the design's preemption period: a spinning waiter requests no
    /// drop, so a longer spin would leave the holder unpreempted.
    pub(super) fn validate_spin(&self) -> Result<(), String> {
        let (Some(spin), Some((period, key))) = (self.spin, self.preemption_period()) else {
            return Ok(());
        };
        if spin < period {
            return Ok(());
        }
        let from = match self.origin.get(key) {
            Some(o) => format!("from {o}"),
            None => "the default".into(),
        };
        let what = if key == "quanta" {
            "the top quantum"
        } else {
            "interval"
        };
        Err(format!(
            "{}: key 'spin' ({}) must be shorter than {what} ({}, {from}) under {}: a \
             spinning waiter requests no drop, so the holder would not be preempted",
            self.origin_of("spin"),
            format_duration(spin),
            format_duration(period),
            self.lock
        ))
    }

    /// TCP echo connections the servers take, and bulk over TCP only.
    pub(super) fn validate_connections(&self) -> Result<(), String> {
        if self.io == IoWork::Echo && self.transport == Transport::Tcp {
            // The load generator spreads its connections over the servers, round-robin.
            let per_server = self.connections.div_ceil(self.io_threads.max(1));
            if per_server > self.max_connections {
                return Err(format!(
                    "{}: key 'connections' ({}) is more than the echo servers take (io_threads {} x max_connections {}): raise max_connections or io_threads",
                    self.origin_of("connections"),
                    self.connections,
                    self.io_threads,
                    self.max_connections
                ));
            }
        }
        if self.io == IoWork::Bulk && self.transport == Transport::Udp {
            return Err(format!(
                "{}: key 'transport': bulk runs over tcp only",
                self.origin_of("transport")
            ));
        }
        Ok(())
    }
}
