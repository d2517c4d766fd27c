from experiments.lecun89.run import main

main()
