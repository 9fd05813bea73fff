//! Real cluster clients through the fleet (placeholder replaced below).
