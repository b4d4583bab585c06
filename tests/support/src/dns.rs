//! A DNS server for tests: answers `A` and `AAAA` questions over UDP from
//! a table the test changes while it runs, with a TTL of 0, so every
//! lookup by a client reaches it and sees the current answer (what a
//! rebinding attacker's name server does).
//!
//! Names it has no entry for get `NXDOMAIN`; a name with an entry but no
//! address of the asked family gets an empty `NOERROR` answer.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Zone {
    /// Lower-case names without the trailing dot.
    answers: Mutex<HashMap<String, Vec<IpAddr>>>,
    questions: AtomicUsize,
}

/// The server; it stops when dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Zone>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Listens on `127.0.0.1`, on a port of its own.
    pub async fn start() -> anyhow::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the test DNS server")?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(Zone::default());
        let task = tokio::spawn(serve(socket, zone.clone()));
        Ok(Self { addr, zone, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, `name` resolves to `addresses`.
    pub fn set(&self, name: &str, addresses: &[IpAddr]) {
        self.zone
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                name.trim_end_matches('.').to_lowercase(),
                addresses.to_vec(),
            );
    }

    /// Questions answered so far (each `A` and `AAAA` counts).
    pub fn questions(&self) -> usize {
        self.zone.questions.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(socket: UdpSocket, zone: Arc<Zone>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        // Anything that is not a DNS query goes unanswered, as a server
        // would drop it.
        let Ok(query) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let Ok(bytes) = answer(&query, &zone).to_vec() else {
            continue;
        };
        let _ = socket.send_to(&bytes, from).await;
    }
}

fn answer(query: &Message, zone: &Zone) -> Message {
    let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.add_queries(query.queries.iter().cloned());
    let answers = zone.answers.lock().unwrap_or_else(PoisonError::into_inner);
    for question in &query.queries {
        zone.questions.fetch_add(1, Ordering::SeqCst);
        let name = question.name().to_ascii();
        let Some(addresses) = answers.get(&name.trim_end_matches('.').to_lowercase()) else {
            response.metadata.response_code = ResponseCode::NXDomain;
            continue;
        };
        for ip in addresses {
            let rdata = match (question.query_type(), ip) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(*v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
                _ => continue,
            };
            response.add_answer(Record::from_rdata(question.name().clone(), 0, rdata));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn question(name: &str, kind: RecordType) -> Message {
        let mut message = Message::query();
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        message
    }

    #[test]
    fn answers_each_family_from_the_table_and_refuses_unknown_names() {
        let zone = Zone::default();
        zone.answers.lock().unwrap().insert(
            "partner.test".into(),
            vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()],
        );
        let a = answer(&question("Partner.test.", RecordType::A), &zone);
        assert_eq!(a.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].data, RData::A(A("127.0.0.2".parse().unwrap())));
        let aaaa = answer(&question("partner.test", RecordType::AAAA), &zone);
        assert_eq!(aaaa.answers.len(), 1);
        let unknown = answer(&question("other.test", RecordType::A), &zone);
        assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);
        assert!(unknown.answers.is_empty());
        assert_eq!(zone.questions.load(Ordering::SeqCst), 3);
    }
}
