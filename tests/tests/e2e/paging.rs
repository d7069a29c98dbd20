//! The list calls in pages (AIP-158): `ListSigners` and `ListPolicies` answer a page at a
//! time with an opaque token for the next, the pages of one listing hold it exactly once
//! even while the log grows, the library follows every page, and a token the call did not
//! give is refused.

use evident_core::dsse::Envelope;
use evident_core::policy::POLICY_PAYLOAD_TYPE;
use evident_core::registry::{Change, sign_change};
use evident_proto::v1 as pb;
use evident_proto::v1::ledger_client::LedgerClient;
use evident_tests::{ADMIN, Server, key, public, write_config};
use tonic::Code;

/// A registry change registering seed key `n` as `signer-N@test`.
fn add_signer(n: u8) -> Envelope {
    let change = Change::AddSigner {
        identity: format!("signer-{n}@test"),
        public_key: Some(public(n).to_hex()),
        roles: vec!["ci".into()],
        predicate_types: vec!["*".into()],
        not_before: None,
        not_after: None,
        certificate: None,
    };
    sign_change(&change, &[&key(ADMIN)])
}

/// Version 1 of the policy `name`.
fn policy(name: &str) -> Envelope {
    let text = format!(
        "name = \"{name}\"\nversion = 1\n\n[[control]]\nid = \"unit-tests\"\n\
         predicate_type = \"https://in-toto.io/attestation/test-result/v0.1\"\n\
         signers = [\"role:ci\"]\nrequire = 'true'\n"
    );
    Envelope::sign(POLICY_PAYLOAD_TYPE, text.into_bytes(), &[&key(ADMIN)])
}

/// Submits `envelopes` in one batch; every one must be logged.
async fn log_all(server: &Server, envelopes: &[Envelope]) {
    for answer in server.client().await.submit_batch(envelopes).await.unwrap() {
        answer.unwrap();
    }
}

/// Every page of `ListSigners` at `page_size`: the identities in order, the `as_of_index`
/// of each page. With `grow`, signer 106 is registered there after the first page.
async fn signer_pages(
    raw: &mut LedgerClient<tonic::transport::Channel>,
    page_size: u32,
    grow: Option<&Server>,
) -> (Vec<Vec<String>>, Vec<u64>) {
    let mut grow = grow;
    let (mut pages, mut as_of) = (Vec::new(), Vec::new());
    let mut page_token = String::new();
    loop {
        let r = raw
            .list_signers(pb::ListSignersRequest {
                page_size,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(r.signers.into_iter().map(|s| s.identity).collect());
        as_of.push(r.as_of_index);
        if let Some(server) = grow.take() {
            log_all(server, &[add_signer(106)]).await;
        }
        if r.next_page_token.is_empty() {
            return (pages, as_of);
        }
        page_token = r.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signers_come_in_pages_that_list_one_registry_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    // 105 signers: three pages of 40.
    log_all(&server, &(2..=105).map(add_signer).collect::<Vec<_>>()).await;
    let expected: Vec<String> = (1..=105).map(|n| format!("signer-{n}@test")).collect();

    // The library follows every page.
    let listing = server.client().await.list_signers(None).await.unwrap();
    let identities: Vec<String> = listing.signers.iter().map(|k| k.identity.clone()).collect();
    // In the order registered, which a batch does not fix.
    let mut sorted = identities.clone();
    sorted.sort_by_key(|i| {
        i.trim_start_matches("signer-")
            .trim_end_matches("@test")
            .parse::<u32>()
            .unwrap()
    });
    assert_eq!(sorted, expected);
    assert_eq!(listing.admins.len(), 1);

    // Pages of 40; a signer registered after the first page is not on the later ones: the
    // token pins the registry of the first page.
    let mut raw = LedgerClient::connect(server.url.clone()).await.unwrap();
    let (pages, as_of) = signer_pages(&mut raw, 40, Some(&server)).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![40, 40, 25]
    );
    assert_eq!(pages.concat(), identities);
    assert!(as_of.iter().all(|a| *a == as_of[0]), "{as_of:?}");

    // A new listing sees the new signer.
    let (pages, _) = signer_pages(&mut raw, 1000, None).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].len(), 106);
    // A request with no page size, as a client that predates paging sends, gets the whole
    // registry in one answer.
    let (pages, _) = signer_pages(&mut raw, 0, None).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].len(), 106);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_come_in_pages_and_the_library_reads_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1], "");
    let server = Server::start(&config, &data).unwrap();
    let names: Vec<String> = (0..101).map(|n| format!("policy-{n:03}")).collect();
    log_all(
        &server,
        &names.iter().map(|n| policy(n)).collect::<Vec<_>>(),
    )
    .await;

    let listed = server.client().await.list_policies().await.unwrap();
    assert_eq!(
        listed.iter().map(|(n, _, _)| n.clone()).collect::<Vec<_>>(),
        names,
        "every version, by name"
    );

    let mut raw = LedgerClient::connect(server.url.clone()).await.unwrap();
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let r = raw
            .list_policies(pb::ListPoliciesRequest {
                page_size: 30,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.policies.len() <= 30);
        seen.extend(r.policies.into_iter().map(|p| p.name));
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    assert_eq!(seen, names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_the_call_did_not_give_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &[1, 2, 3], "");
    let server = Server::start(&config, &data).unwrap();
    log_all(&server, &[policy("alpha"), policy("beta")]).await;
    let mut raw = LedgerClient::connect(server.url.clone()).await.unwrap();
    let policies_token = raw
        .list_policies(pb::ListPoliciesRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!policies_token.is_empty());

    for bad in ["not a token", "bm90IGEgdG9rZW4", &policies_token] {
        let refused = raw
            .list_signers(pb::ListSignersRequest {
                page_token: bad.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused
                .message()
                .contains("page_token is not a token ListSigners gave"),
            "{refused:?}"
        );
    }
    let refused = raw
        .list_policies(pb::ListPoliciesRequest {
            page_size: 1,
            page_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("ListPolicies"), "{refused:?}");
}
