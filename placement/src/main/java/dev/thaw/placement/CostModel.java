package dev.thaw.placement;

/**
 * What a plan costs, in demand-weighted seconds: each new replica its start cost ({@link StartCost}) times its model's
 * demand weight; each running replica the plan removes {@code movePenaltySeconds}; each wanted replica it cannot
 * place {@code unplacedSeconds} times the weight (large: placing comes first).
 */
public record CostModel(double movePenaltySeconds, double unplacedSeconds) {
  public static final CostModel DEFAULT = new CostModel(30, 10_000);

  public CostModel {
    if (movePenaltySeconds < 0 || unplacedSeconds < 0) {
      throw new IllegalArgumentException("penalties must not be negative");
    }
  }
}
