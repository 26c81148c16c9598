//! The regtest harness itself: bcoin and e-x start, mine, reorganise, stop and start again, and
//! e-x follows the node through all of it.

use stargate_tests::{BURN_ADDRESS, Regtest};

#[tokio::test(flavor = "multi_thread")]
async fn harness_mines_reorgs_and_restarts() -> anyhow::Result<()> {
    let mut regtest = Regtest::start().await?;
    assert_eq!(regtest.height().await?, 0);

    let mined = regtest.mine_blocks(5, BURN_ADDRESS).await?;
    assert_eq!(mined.len(), 5);
    assert_eq!(regtest.height().await?, 5);
    assert_eq!(regtest.best_block_hash().await?, mined[4]);
    regtest.wait_for_electrum_sync().await?;

    let orphaned = regtest.reorg(2).await?;
    assert_eq!(orphaned, mined[3..].to_vec());
    assert_eq!(regtest.height().await?, 6);
    assert_ne!(regtest.block_hash(4).await?, mined[3]);
    assert_eq!(regtest.block_hash(3).await?, mined[2]);
    regtest.wait_for_electrum_sync().await?;

    regtest.stop_electrumx().await?;
    regtest.mine_blocks(1, BURN_ADDRESS).await?;
    regtest.start_electrumx().await?;
    regtest.wait_for_electrum_sync().await?;

    let tip = regtest.best_block_hash().await?;
    regtest.stop_bcoin().await?;
    assert!(regtest.height().await.is_err());
    regtest.start_bcoin().await?;
    assert_eq!(regtest.best_block_hash().await?, tip);
    regtest.wait_for_electrum_sync().await?;

    let cookie = std::fs::read_to_string(regtest.write_cookie_file()?)?;
    assert!(cookie.ends_with(regtest.rpc_password()));
    Ok(())
}
