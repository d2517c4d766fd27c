from experiments.hashednets.run import main

main()
