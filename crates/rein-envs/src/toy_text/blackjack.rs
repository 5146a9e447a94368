//! Blackjack-v1 (Sutton & Barto, example 5.1), as Gymnasium's `toy_text.blackjack`: an infinite
//! deck, the dealer hits below 17; observation (player sum, dealer's showing card, usable ace).

use rand::Rng;
use rein_core::env::snapshot_field;
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Render, Space, Step, Value};
use std::collections::VecDeque;

/// Card values of one suit (face cards count 10, ace counts 1 or 11).
const DECK: [u8; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10];

fn usable_ace(hand: &[u8]) -> bool {
    hand.contains(&1) && hand_total(hand) + 10 <= 21
}

fn hand_total(hand: &[u8]) -> u32 {
    hand.iter().map(|&c| c as u32).sum()
}

/// The best total of a hand (an ace counts 11 when that does not bust).
pub fn sum_hand(hand: &[u8]) -> u32 {
    if usable_ace(hand) {
        hand_total(hand) + 10
    } else {
        hand_total(hand)
    }
}

fn is_bust(hand: &[u8]) -> bool {
    sum_hand(hand) > 21
}

fn score(hand: &[u8]) -> u32 {
    if is_bust(hand) {
        0
    } else {
        sum_hand(hand)
    }
}

fn is_natural(hand: &[u8]) -> bool {
    let mut h = hand.to_vec();
    h.sort_unstable();
    h == [1, 10]
}

/// Blackjack: stick (0) or hit (1). Reward +1 win, -1 loss, 0 draw. With `natural`, a winning
/// natural pays 1.5; with `sab` (Sutton & Barto's rules, the registered default), a natural
/// beats any non-natural dealer hand.
pub struct Blackjack {
    player: Vec<u8>,
    dealer: Vec<u8>,
    natural: bool,
    sab: bool,
    started: bool,
    rng: EnvRng,
    forced_cards: VecDeque<u8>,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
}

impl Blackjack {
    /// A new game with the given rule options.
    pub fn new(natural: bool, sab: bool) -> Self {
        Self {
            player: Vec::new(),
            dealer: Vec::new(),
            natural,
            sab,
            started: false,
            rng: EnvRng::new(),
            forced_cards: VecDeque::new(),
            obs_space: Space::Tuple {
                spaces: vec![Space::discrete(32), Space::discrete(11), Space::discrete(2)],
            },
            act_space: Space::discrete(2),
            spec: None,
        }
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The player's and the dealer's hands (the dealer's first card is the one shown).
    pub fn hands(&self) -> (&[u8], &[u8]) {
        (&self.player, &self.dealer)
    }

    /// Makes the next draws return these cards (1-10) in order, to replay a recorded game.
    pub fn push_cards(&mut self, cards: &[u8]) {
        self.forced_cards.extend(cards);
    }

    fn draw_card(&mut self) -> u8 {
        match self.forced_cards.pop_front() {
            Some(c) => c,
            None => DECK[self.rng.get().random_range(0..DECK.len())],
        }
    }

    fn obs(&self) -> Value {
        let dealer_showing = self.dealer.first().copied().unwrap_or(0);
        Value::Tuple(vec![
            Value::Discrete(sum_hand(&self.player) as i64),
            Value::Discrete(dealer_showing as i64),
            Value::Discrete(i64::from(usable_ace(&self.player))),
        ])
    }
}

impl Env for Blackjack {
    crate::util::builtin_env_accessors!("Blackjack-v1");

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        self.dealer = vec![self.draw_card(), self.draw_card()];
        self.player = vec![self.draw_card(), self.draw_card()];
        self.started = true;
        (self.obs(), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = crate::util::discrete_action(action, &self.act_space)?;
        if !self.started {
            return Err(EnvError::ResetNeeded);
        }
        let (terminated, reward) = if a == 1 {
            let c = self.draw_card();
            self.player.push(c);
            if is_bust(&self.player) {
                (true, -1.0)
            } else {
                (false, 0.0)
            }
        } else {
            while sum_hand(&self.dealer) < 17 {
                let c = self.draw_card();
                self.dealer.push(c);
            }
            let (p, d) = (score(&self.player), score(&self.dealer));
            let mut reward = f64::from(u8::from(p > d)) - f64::from(u8::from(p < d));
            if self.sab && is_natural(&self.player) && !is_natural(&self.dealer) {
                reward = 1.0;
            } else if !self.sab && self.natural && is_natural(&self.player) && reward == 1.0 {
                reward = 1.5;
            }
            (true, reward)
        };
        Ok(Step {
            obs: self.obs(),
            reward,
            terminated,
            truncated: false,
            info: Info::new(),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        if !self.started {
            return Err(EnvError::ResetNeeded);
        }
        Ok(serde_json::json!({"player": self.player, "dealer": self.dealer}))
    }

    /// Takes `{"player": [cards], "dealer": [cards]}` with card values 1-10.
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let err = |m: &str| EnvError::InvalidState {
            env: "Blackjack-v1".into(),
            message: format!(
                "{m}; expected {{\"player\": [cards], \"dealer\": [cards]}} with card values \
                 1-10 and at least one dealer card, got {state}"
            ),
        };
        let hand = |key: &str| -> Result<Vec<u8>, EnvError> {
            let arr = state
                .get(key)
                .and_then(|v| v.as_array())
                .ok_or_else(|| err(&format!("missing array {key:?}")))?;
            arr.iter()
                .map(|c| {
                    c.as_u64()
                        .filter(|&c| (1..=10).contains(&c))
                        .map(|c| c as u8)
                        .ok_or_else(|| err(&format!("bad card {c} in {key:?}")))
                })
                .collect()
        };
        let (player, dealer) = (hand("player")?, hand("dealer")?);
        if dealer.is_empty() || player.is_empty() {
            return Err(err("empty hand"));
        }
        self.player = player;
        self.dealer = dealer;
        self.started = true;
        Ok(self.obs())
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(
            serde_json::json!({"player": self.player, "dealer": self.dealer, "started": self.started, "rng": self.rng, "forced_cards": self.forced_cards}),
        )
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.player = snapshot_field(&name, snap, "player")?;
        self.dealer = snapshot_field(&name, snap, "dealer")?;
        self.started = snapshot_field(&name, snap, "started")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        self.forced_cards = snapshot_field(&name, snap, "forced_cards")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        if !self.started {
            return Err(EnvError::ResetNeeded);
        }
        Ok(Render::Text(format!(
            "player {:?} (sum {}{}), dealer shows {}\n",
            self.player,
            sum_hand(&self.player),
            if usable_ace(&self.player) {
                ", usable ace"
            } else {
                ""
            },
            self.dealer[0]
        )))
    }
}
