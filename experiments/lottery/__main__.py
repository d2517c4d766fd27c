from experiments.lottery.run import main

main()
